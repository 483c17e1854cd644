"""The dashboard: server-rendered pages (Starlette + Jinja2), scoped by central.authz."""
