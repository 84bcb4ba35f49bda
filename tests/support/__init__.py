"""Helpers shared by the test suite: a recording SMTP server, a TCP proxy, polling waits."""
