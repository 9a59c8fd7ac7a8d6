"""Constants and helpers shared by the web app's tests."""

PASSWORDS = {"admin": "admin-passphrase-1", "editor": "editor-passphrase-2", "viewer": "viewer-passphrase-3"}
EMAILS = {role: f"{role}@example.com" for role in PASSWORDS}
DEMO_SIZE = 150  # people of the demo company: small, the whole demo runs in a few seconds
