"""The scan path, from the paths a user gave to scored faces: `discover` (paths to videos), `files`
(checked and hashed), decoding (dfscan.decode), `faces` (YuNet's crops); `pipeline` runs them for many
videos at once and scores the crops (dfscan.classifier), `queue_scanner` adds seen-before fingerprints,
`distributed` runs the same on Ray."""
