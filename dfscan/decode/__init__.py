"""Decoding videos: which frames (frames.py), which stream (streams.py), MP4 tables read before FFmpeg
(mp4.py), the decoders (pyav.py, decord_reader.py, opencv.py) tried in turn (source.py), in a worker
process with a deadline (worker.py). dfscan.decode.read re-exports what the rest of dfscan imports."""
