"""The search layer: region → pixel ranges → candidates → exact test → rows.

Plain functions that take a database connection (:class:`skyreg.db.connection.ReadConnection`,
the registry's session for reads) and the registry's pixel scheme, so that every caller asks the
same exact questions the same way: the :class:`~skyreg.registry.Registry` facade, ingest (which
finds the patch of a coadd without a Registry of its own), and the web service through the
registry. Modules, bottom up:

* :mod:`~skyreg.search.sql`: statements compiled once per shape, on first use;
* :mod:`~skyreg.search.statements`, :mod:`~skyreg.search.dataset_statements`: the SQL;
* :mod:`~skyreg.search.validation`, :mod:`~skyreg.search.regions`: arguments and regions;
* :mod:`~skyreg.search.exact`: pixel ranges, candidates and the exact test;
* :mod:`~skyreg.search.columns`, :mod:`~skyreg.search.results`: what a result holds;
* :mod:`~skyreg.search.ccds`, :mod:`~skyreg.search.tiles`, :mod:`~skyreg.search.datasets`: the
  searches.

Importing the package builds no SQL objects; submodules are imported where they are used.
"""
