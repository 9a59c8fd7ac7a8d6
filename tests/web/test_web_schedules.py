"""The schedules page: every schedule with its next fire time; editors add, change and remove the
cron of the pipeline, a source or a sync (the REST API's code: versions, the checks of apply)."""

from __future__ import annotations

import re


def row_of(html: str, kind: str, name: str) -> str:
    return html.split(f'id="schedule-{kind}-{name}"')[1].split("</tr>")[0]


def version_in(row: str) -> str:
    return re.search(r'name="version" value="([0-9a-f]+)"', row).group(1)


def test_add_change_and_remove_schedules(web):
    editor = web.client("editor")
    page = editor.get("/schedules").text
    assert "Run the whole pipeline" in page and 'id="schedule-source-crm_contacts"' in page
    row = row_of(page, "source", "crm_contacts")
    answer = editor.post("/schedules/source/crm_contacts", data={"cron": "0 6 * * *", "version": version_in(row),
                                                                  "action": "save", "csrf_token": editor.csrf},
                         follow_redirects=False)
    assert answer.status_code == 303, answer.text
    source = web.app.state.owner.read(lambda ws: next(s for s in ws.config.sources if s.name == "crm_contacts"))
    assert source.schedule == "0 6 * * *"
    row = row_of(editor.get("/schedules").text, "source", "crm_contacts")
    assert 'value="0 6 * * *"' in row and re.search(r"<td>\d{4}-\d\d-\d\d 06:00", row), "its next fire time"
    pipeline = row_of(editor.get("/schedules").text, "pipeline", "pipeline")
    assert editor.post("/schedules/pipeline/pipeline", data={"cron": "@daily", "version": version_in(pipeline),
                                                             "csrf_token": editor.csrf},
                       follow_redirects=False).status_code == 303
    assert web.app.state.owner.read(lambda ws: ws.config.pipeline.schedule) == "@daily"
    row = row_of(editor.get("/schedules").text, "source", "crm_contacts")
    assert editor.post("/schedules/source/crm_contacts", data={"action": "remove", "version": version_in(row),
                                                                "csrf_token": editor.csrf},
                       follow_redirects=False).status_code == 303
    source = web.app.state.owner.read(lambda ws: next(s for s in ws.config.sources if s.name == "crm_contacts"))
    assert source.schedule is None


def test_a_bad_cron_and_an_old_version_are_shown_on_their_row(web):
    editor = web.client("editor")
    old = version_in(row_of(editor.get("/schedules").text, "source", "eshop_orders"))
    bad = editor.post("/schedules/source/eshop_orders", data={"cron": "every day", "version": old,
                                                             "csrf_token": editor.csrf})
    assert bad.status_code == 400
    row = row_of(bad.text, "source", "eshop_orders")
    assert "is not a cron schedule" in row and 'value="every day"' in row
    assert editor.post("/schedules/source/eshop_orders", data={"cron": "*/30 * * * *", "version": old,
                                                              "csrf_token": editor.csrf},
                       follow_redirects=False).status_code == 303
    late = editor.post("/schedules/source/eshop_orders", data={"cron": "0 1 * * *", "version": old,
                                                              "csrf_token": editor.csrf})
    assert late.status_code == 409 and "nothing was saved" in row_of(late.text, "source", "eshop_orders")
    source = web.app.state.owner.read(lambda ws: next(s for s in ws.config.sources if s.name == "eshop_orders"))
    assert source.schedule == "*/30 * * * *"


def test_viewers_see_the_schedules_but_cannot_change_them(web):
    viewer = web.client("viewer")
    page = viewer.get("/schedules").text
    assert 'id="schedule-pipeline-pipeline"' in page and 'name="cron"' not in page
    answer = viewer.post("/schedules/pipeline/pipeline", data={"cron": "@hourly", "csrf_token": viewer.csrf})
    assert answer.status_code == 403
