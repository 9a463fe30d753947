"""Moderation queues' memory, kept in the result store (`db`, its tables in `tables`): what was seen
before (`fingerprint`, `seen`) and people's labels (`labels`). The scan that adds fingerprints is
dfscan.scanning.queue_scanner; the watcher is dfscan.watch."""
