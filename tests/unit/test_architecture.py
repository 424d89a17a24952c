"""The import graph: no module imports, even indirectly, a module that imports it; the layer
contracts themselves (the engine imports no pillar, ...) are in pyproject.toml, checked by
``lint-imports`` in ``make lint``."""

from __future__ import annotations

import grimp


def test_no_module_is_part_of_an_import_circle() -> None:
    graph = grimp.build_graph("kpay_faust", cache_dir=None)  # a cache can be stale
    circles = sorted(
        f"{module} -> {imported} -> ... -> {module}"
        for module in graph.modules
        for imported in graph.find_modules_directly_imported_by(module)
        if graph.chain_exists(importer=imported, imported=module)
    )
    assert circles == []
