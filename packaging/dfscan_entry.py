"""Entry script of the standalone executable (see build_exe.spec): the same `dfscan` command."""
from dfscan.cli import run

if __name__ == "__main__":
    import multiprocessing

    # decoding workers (dfscan/decode/worker.py) and the window's scan (a child process) start here when frozen
    multiprocessing.freeze_support()
    run()
