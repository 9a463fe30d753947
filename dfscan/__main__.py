from .cli import run

if __name__ == "__main__":
    import multiprocessing

    multiprocessing.freeze_support()  # decoding workers (dfscan/decode/worker.py) start from a frozen executable too
    run()
