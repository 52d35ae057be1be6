"""The Docker Engine API, served on a second socket (``mcd --docker-socket PATH``).

The same Manager, the same rules and the same typed errors as /v1; only the
vocabulary changes. ``translate`` maps request and response shapes (pure, unit
tested), ``streams`` does Docker's stream framing and connection hijacking, and
``api`` holds the route table and the handlers. API versions: MIN_API..MAX_API.
"""

MIN_API = "1.41"
MAX_API = "1.45"
