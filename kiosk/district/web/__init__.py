"""The district's live web page (``kiosk district web``, station.md).

`model` folds what stations and the router publish into the district view,
`forecast` computes the rate and the forecast (pure functions), `server`
feeds the model from the broker and serves the page (``static/``, plain
HTML/CSS/JS, no build step) and its JSON. Read-only; no personal data.
"""
