"""bt-analyzer validate: the project's real-traffic scenarios, run on the examiner's machine.

``harness/`` runs real BitTorrent clients in private network namespaces under capture and
reads their own counters (it imports nothing of the analyzer: it is the ground truth).
The rest of this package runs the scenarios, analyses each capture with the library and
compares the figures with the clients' counters (see ``runner.py``).
"""
