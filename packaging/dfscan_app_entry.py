"""Entry script of the standalone build's windowed executable, dfscan-app (see build_exe.spec): the window."""
from dfscan.gui.launch import main

if __name__ == "__main__":
    import multiprocessing

    multiprocessing.freeze_support()  # the window scans in a child process: a frozen child starts here
    main()
