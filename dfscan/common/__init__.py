"""What every layer of dfscan shares, importing nothing else of it: the exceptions that carry exit codes
(`errors`), named choices (`constants`), the ranges of numeric settings (`limits`), per-user folders
(`dirs`) and the sweep of temporary files a killed process left (`leftovers`)."""
