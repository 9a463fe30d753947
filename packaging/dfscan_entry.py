"""Entry script of the standalone executable (see build_exe.spec): the same `dfscan` command."""
from dfscan.cli import run

if __name__ == "__main__":
    import multiprocessing

    multiprocessing.freeze_support()  # the window scans in a child process: a frozen child starts here
    run()
