"""One router per protocol: the JSON API, SIA 2.0, DataLink (and files), SODA."""
