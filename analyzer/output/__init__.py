"""Writers: the findings serialised into the output folder, and nothing else.

``writer.write_outputs(findings, DIR, ...)`` writes summary.json, the CSV tables, the Parquet
tables, rebuilt metadata and manifest.json.  Everything here formats what ``analyzer.findings``
computed; the report (``analyzer.report``) then reads only these files.  (This package imports
nothing, so that ``analyze`` can fork the Parquet process, ``parquet_worker``, before it imports
the analysis.)
"""
