"""HTML views, one module per area: function views returning TemplateResponse, each starting
with the access helper (``coding/access.py``)."""
