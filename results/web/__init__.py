"""The results browser: `bench serve` (a read-only web application over the store) and
`bench publish` (the same pages as a static site). views: each page's data; pages: the HTML;
app: the FastAPI application; server: binding and running it; site: the static site."""
