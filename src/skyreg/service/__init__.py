"""The web service (``skyreg serve``): a JSON API and the IVOA protocols over the registry.

Layout, bottom up: ``settings`` (one settings object), ``database`` (engine, read-only role,
registry pool), ``queries`` (the service layer: every call into the registry), ``obscore`` (the
ObsCore columns and the statements over ``ivoa.obscore``), ``params`` and ``regions`` (DALI
parameters and sky shapes), ``soda_pixels`` (cutouts), encoders (``votable``, ``documents``,
``columnar``), ``routers`` (one per protocol: api, sia2, datalink, soda) and ``app``/``server``.
Needs the ``service`` extra: ``pip install 'skyreg[service]'``.
"""
