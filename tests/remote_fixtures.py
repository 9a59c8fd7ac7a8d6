"""FTP, FTPS and SFTP servers for the tests, running in-process on 127.0.0.1."""
