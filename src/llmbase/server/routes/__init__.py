"""One router module per resource; app.ROUTERS lists them."""
