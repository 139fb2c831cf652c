"""The operator console's parts: sessions and CSRF, the overview's numbers, the live job relay, templates and
static files. Its routes are in ``api/routes/console.py``."""
