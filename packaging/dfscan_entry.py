"""Entry script of the standalone executable (see build_exe.spec): the same `dfscan` command."""
from dfscan.cli import run

if __name__ == "__main__":
    import multiprocessing

    multiprocessing.freeze_support()  # decoding workers (dfscan/decode/worker.py) start from a frozen executable too
    run()
