"""The web service (``skyreg serve``): a JSON API and the IVOA protocols over the registry.

Layout, bottom up: ``settings`` (one settings object), ``database`` (engine, read-only role,
registry pool), ``queries`` (the service layer: every call into the registry), ``obscore`` (the
ObsCore columns and the statements over ``ivoa.obscore``), ``params``, ``query_args`` and
``regions`` (DALI parameters, JSON API query arguments, sky shapes), ``soda_pixels`` and
``stamps`` (SODA cutouts and postage stamps, both cut by :mod:`skyreg.cutouts`), encoders
(``votable``, ``documents``, ``columnar``), ``routers`` (api, stamps, sia2, datalink, soda,
sky) and ``app``/``server``.
Needs the ``service`` extra: ``pip install 'skyreg[service]'``.
"""
