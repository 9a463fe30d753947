"""`dfscan watch`: a folder scanned as files arrive (`watcher`), and the ledger of what was done
(`ledger`), which survives restarts."""
