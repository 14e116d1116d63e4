"""Importers: convert other tools' kernel databases into servecast perfdb shards.

`aic` reads an AIConfigurator (`aiconfigurator-core`) systems folder, unpacked package or wheel.
"""
from perfdb.importers.aic import ImportReport, TableReport, WrittenTable, import_aic
from perfdb.importers.aic_source import AicSource, open_aic_source

__all__ = ["ImportReport", "TableReport", "WrittenTable", "import_aic", "AicSource", "open_aic_source"]
