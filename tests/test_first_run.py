"""The first ten minutes (issue 26): a first run that explains itself, and commands that do what a new
user expects (refuse a mistyped path at once, finish an interrupted default report, `-` for stdout,
whole paths off a terminal, a confirmation before deleting, help that is true)."""
import csv
import io
import json
import os
import re
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest

from dfscan.cli import main
from dfscan.reports.writers import CSV_COLUMNS

ROOT = Path(__file__).resolve().parents[1]
ANSI = re.compile(r"\x1b\[[0-9;?]*[ -/]*[@-~]|\x1b\][^\x07]*\x07")
CAVEAT = "A FAKE verdict is a reason to look closer, not proof; a REAL verdict does not clear a video."


def env_for(tmp_path: Path, **more) -> dict[str, str]:
    return {**os.environ, "PYTHONPATH": str(ROOT), "DFSCAN_DATA_DIR": str(tmp_path / "data"), **more}


def run_cli(*args, cwd, env=None, timeout=300) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "dfscan", *map(str, args)], capture_output=True, text=True,
                          cwd=cwd, env=env or env_for(Path(cwd)), timeout=timeout, stdin=subprocess.DEVNULL)


def in_terminal(args, cwd, env, columns: int = 80, answer: bytes = b"", timeout: float = 300) -> tuple[int, str]:
    """Run dfscan on a real pseudo-terminal `columns` wide (stdin, stdout and stderr); its screen text."""
    import fcntl
    import pty
    import struct
    import termios

    master, slave = pty.openpty()
    fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", 40, columns, 0, 0))
    env = {k: v for k, v in env.items() if k not in ("COLUMNS", "LINES")} | {"TERM": "xterm-256color"}
    proc = subprocess.Popen([sys.executable, "-m", "dfscan", *map(str, args)], stdin=slave, stdout=slave,
                            stderr=slave, cwd=cwd, env=env, close_fds=True)
    os.close(slave)
    if answer:
        os.write(master, answer)
    chunks, deadline = [], time.monotonic() + timeout
    while True:
        try:
            data = os.read(master, 65536)
        except OSError:  # EIO: the child closed the terminal
            break
        if not data or time.monotonic() > deadline:
            break
        chunks.append(data)
    os.close(master)
    code = proc.wait(timeout=60)
    return code, ANSI.sub("", b"".join(chunks).decode("utf-8", "replace")).replace("\r", "")


@pytest.fixture
def one_real(clips, tmp_path):
    folder = tmp_path / "in"
    folder.mkdir()
    (folder / "a.avi").write_bytes(clips["real_avi"].read_bytes())
    return folder


# -- 2. a first run that explains itself --------------------------------------------------------------------

def test_the_first_scan_says_each_phase_on_one_line_and_breaks_no_word_at_80_columns(one_real, colour_model,
                                                                                    tmp_path):
    model = tmp_path / "colour.keras"  # with a sidecar: a model that needs no warning
    model.write_bytes(colour_model.read_bytes())
    model.with_suffix(".json").write_text(json.dumps({"name": "colour", "preprocessing": {
        "input_size": [224, 224], "color_order": "BGR", "scale": "0..1", "resize": "stretch"}}))
    env = env_for(tmp_path, DFSCAN_CACHE_DIR=str(tmp_path / "cache"))  # nothing converted yet: a first run
    args = ["scan", one_real, "--model", model, "--no-store", "--csv", tmp_path / "r.csv"]
    code, screen = in_terminal(args, tmp_path, env)
    assert code == 0, screen
    # A line of its own (the spinner, drawn with cursor moves stripped here, is erased before it)
    assert "preparing the model for this CPU, once (~10 s)…\n" in screen, screen
    assert CAVEAT in " ".join(screen.split()), screen  # no word of the summary is cut at the 80th column
    assert "the model was ready in" in screen and "(not counted above)" in " ".join(screen.split())
    assert "WARNING" not in screen and "Traceback" not in screen
    code, again = in_terminal(args[:-1] + [tmp_path / "r2.csv"], tmp_path, env)  # converted once: not again
    assert code == 0 and "preparing the model" not in again, again


def test_the_first_use_pin_is_one_line_of_information(tmp_path, colour_model, clips):
    from hub_server import HubStandIn

    repo, file = "someone/model", "best_model.keras"
    env = env_for(tmp_path, HF_HUB_OFFLINE="0", HF_HUB_CACHE=str(tmp_path / "hub"), COLUMNS="80")
    with HubStandIn() as hub:
        sidecar = {"name": "colour", "preprocessing": {"input_size": [224, 224], "color_order": "BGR",
                                                       "scale": "0..1", "resize": "stretch"}}
        hub.add(repo, {file: colour_model.read_bytes(), "best_model.json": json.dumps(sidecar).encode()},
                commit="5" * 40)
        env["HF_ENDPOINT"] = hub.url
        done = run_cli("scan", clips["real_avi"], "--model", f"hf://{repo}", "--no-store", "--csv",
                       tmp_path / "r.csv", cwd=tmp_path, env=env)
    assert done.returncode == 0, done.stderr
    pinned = [line for line in done.stderr.splitlines() if line.startswith("pinned the model on first use")]
    assert len(pinned) == 1, done.stderr  # one line, however long, when stderr is not a terminal
    assert str(tmp_path / "data" / "model-pins.json") in pinned[0] and f"hf://{repo}/{file}@main" in pinned[0]
    download = [line for line in done.stderr.splitlines() if line.startswith("downloading the model (")]
    assert len(download) == 1 and f"hf://{repo}/{file}" in download[0], done.stderr
    assert "warning" not in done.stderr.lower()  # trust on first use is the normal path, not an alarm


def test_without_the_hub_the_message_says_what_to_do_in_plain_words(tmp_path, clips):
    from hub_server import closed_port_url

    env = env_for(tmp_path, HF_HUB_OFFLINE="0", HF_HUB_CACHE=str(tmp_path / "hub"), HF_ENDPOINT=closed_port_url())
    done = run_cli("scan", clips["real_avi"], "--csv", tmp_path / "r.csv", cwd=tmp_path, env=env)
    assert done.returncode == 2
    err = " ".join(done.stderr.split())
    plain = err.index("What to do: on a computer with internet access, open http")  # where to get the file
    assert "/fc63/deepfake-detection-cnn_v2/resolve/main/keras_model/best_model.keras" in err
    assert plain < err.index("HTTPS_PROXY") < err.index("HF_ENDPOINT") and "--model FILE" in err
    assert not (tmp_path / "r.csv").exists()


# -- 3. behaviours ------------------------------------------------------------------------------------------

def test_a_mistyped_path_is_refused_before_the_model_is_loaded(one_real, tmp_path):
    # The model named does not exist either: had dfscan started loading it, that would be the error.
    started = time.monotonic()
    done = run_cli("scan", one_real, tmp_path / "Vidoes", "--model", tmp_path / "no-model.keras", cwd=tmp_path)
    assert done.returncode == 2, done.stderr
    assert "no such file or folder" in done.stderr and "Vidoes" in done.stderr and "model" not in done.stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == ["in"]  # no report, no .partial, no store
    assert time.monotonic() - started < 60  # generous: the point is above, no model was loaded


def test_a_missing_path_from_a_list_is_still_an_error_row(one_real, colour_model, tmp_path):
    listing = tmp_path / "queue.txt"
    listing.write_text(f"{one_real / 'a.avi'}\n{tmp_path / 'gone.mp4'}\n")
    assert main(["scan", "--from-file", str(listing), "--model", str(colour_model), "--no-store", "-q",
                 "--csv", str(tmp_path / "q.csv")]) == 2
    with open(tmp_path / "q.csv", newline="") as fh:
        assert [r["verdict"] for r in csv.DictReader(fh)] == ["REAL", "ERROR"]


def stored(store: Path) -> int:
    try:
        with sqlite3.connect(f"file:{store}?mode=ro", uri=True, timeout=10) as db:
            return db.execute("SELECT COUNT(*) FROM results").fetchone()[0]
    except sqlite3.Error:
        return 0


@pytest.fixture(scope="module")
def six_clips(tmp_path_factory):
    from conftest import frames_for, write_opencv

    folder = tmp_path_factory.mktemp("six")
    for i in range(6):
        write_opencv(folder / f"clip{i}.mp4", frames_for(300, tint=("red", "blue")[i % 2], seed=20 + i))
    return folder


def test_the_same_command_finishes_the_report_it_left_partial(six_clips, colour_model, tmp_path):
    """Ctrl-C on the default command (no --csv), then the same command: one report, no partial left."""
    store = tmp_path / "s.sqlite"
    args = [sys.executable, "-m", "dfscan", "scan", str(six_clips), "--model", str(colour_model), "--store",
            str(store), "--workers", "1", "-q"]
    work = tmp_path / "work"
    work.mkdir()
    proc = subprocess.Popen(args, cwd=work, env=env_for(tmp_path), stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True)
    deadline = time.monotonic() + 240
    while stored(store) < 1 and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.02)
    assert proc.poll() is None, "the scan finished before it could be interrupted"
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 130, err
    partial = list(work.glob("dfscan-report-*.csv.partial"))
    assert len(partial) == 1 and partial[0].name in " ".join(err.split()), err
    again = subprocess.run(args, cwd=work, env=env_for(tmp_path), capture_output=True, text=True, timeout=300)
    assert again.returncode == 1, again.stderr
    assert sorted(p.name for p in work.iterdir()) == [partial[0].name[: -len(".partial")]]  # finished, same name
    with open(work / partial[0].name[: -len(".partial")], newline="") as fh:
        rows = list(csv.DictReader(fh))
    assert len(rows) == 6 and "yes" in {r["reused"] for r in rows}
    third = subprocess.run(args, cwd=work, env=env_for(tmp_path), capture_output=True, text=True, timeout=300)
    assert third.returncode == 1 and len(list(work.iterdir())) == 2  # a finished report is never replaced


@pytest.mark.parametrize("flag", ["--csv", "--json", "--jsonl", "--dfdc"])
def test_dash_sends_the_report_to_stdout(one_real, colour_model, tmp_path, monkeypatch, capsys, flag):
    monkeypatch.chdir(tmp_path)
    more = ["--csv", str(tmp_path / "r.csv")] if flag != "--csv" else []
    assert main(["scan", str(one_real), "--model", str(colour_model), "--no-store", flag, "-", *more]) == 0
    out, err = capsys.readouterr()
    assert not (tmp_path / "-").exists() and not list(tmp_path.glob("*.partial"))
    if flag == "--csv":
        rows = list(csv.DictReader(io.StringIO(out)))
        assert tuple(rows[0]) == CSV_COLUMNS and rows[0]["verdict"] == "REAL"
    elif flag == "--json":
        assert json.loads(out)["videos"][0]["verdict"] == "REAL"
    elif flag == "--jsonl":
        assert [json.loads(line)["verdict"] for line in out.splitlines()] == ["REAL"]
    else:
        assert out.splitlines()[0] == "filename,label" and out.splitlines()[1].startswith("a.avi,")
    assert "REAL: 1" in err and "REAL: 1" not in out  # the summary went to stderr, stdout holds the report


def test_dash_is_for_one_text_report(one_real, colour_model, tmp_path, capsys):
    base = ["scan", str(one_real), "--model", str(colour_model), "--no-store"]
    assert main([*base, "--html", "-", "--csv", str(tmp_path / "r.csv")]) == 2
    assert "--html needs a file name" in capsys.readouterr().err
    assert main([*base, "--csv", "-", "--json", "-"]) == 2
    assert "only one report can go to stdout" in capsys.readouterr().err


def test_models_commands_never_break_a_path_off_a_terminal(tmp_path, colour_model):
    from test_registry import FILE, REGISTRY, lay_out_hub_cache

    cache = tmp_path / ("a-rather-long-folder-name-for-the-hub-cache-" * 3) / "hub"
    cache.mkdir(parents=True)
    path = lay_out_hub_cache(cache, colour_model)
    env = env_for(tmp_path, HF_HUB_CACHE=str(cache), HF_HUB_OFFLINE="1", DFSCAN_REGISTRY=str(REGISTRY),
                  COLUMNS="80")
    for args in (["models", "list"], ["models", "verify"], ["models", "fetch"]):
        done = run_cli(*args, cwd=tmp_path, env=env)
        assert str(path) in done.stdout, (args, done.stdout)  # whole, on one line
    assert FILE in str(path)
    fetched = run_cli("models", "fetch", cwd=tmp_path, env=env)
    assert fetched.returncode == 0, fetched.stderr
    assert "already in the hub cache: dfscan did not contact the hub" in fetched.stdout


def test_store_clear_asks_on_a_terminal_and_not_in_a_script(tmp_path, colour_model, clips):
    store = tmp_path / "s.sqlite"
    assert main(["scan", str(clips["real_avi"]), "--model", str(colour_model), "--store", str(store), "-q",
                 "--csv", str(tmp_path / "r.csv")]) == 0
    env = env_for(tmp_path)
    code, screen = in_terminal(["store", "--store", store, "clear"], tmp_path, env, answer=b"n\n", timeout=60)
    assert code == 0 and "Delete every result kept in" in screen and "nothing was deleted" in screen, screen
    assert store.exists()
    code, screen = in_terminal(["store", "--store", store, "clear"], tmp_path, env, answer=b"y\n", timeout=60)
    assert code == 0 and not store.exists(), screen
    assert main(["scan", str(clips["real_avi"]), "--model", str(colour_model), "--store", str(store), "-q",
                 "--csv", str(tmp_path / "r2.csv")]) == 0
    code, screen = in_terminal(["store", "--store", store, "clear", "--yes"], tmp_path, env, timeout=60)
    assert code == 0 and not store.exists() and "Delete every" not in screen, screen
    assert main(["scan", str(clips["real_avi"]), "--model", str(colour_model), "--store", str(store), "-q",
                 "--csv", str(tmp_path / "r3.csv")]) == 0
    script = run_cli("store", "--store", store, "clear", cwd=tmp_path)  # no terminal: the command is the answer
    assert script.returncode == 0 and not store.exists(), script.stderr


def test_store_info_counts_in_the_singular(tmp_path, colour_model, clips, capsys):
    store = tmp_path / "s.sqlite"
    assert main(["scan", str(clips["real_avi"]), "--model", str(colour_model), "--store", str(store), "-q",
                 "--csv", str(tmp_path / "r.csv")]) == 0
    assert main(["store", "--store", str(store), "info"]) == 0
    out = " ".join(capsys.readouterr().out.split())
    assert "1 result of 1 file, 1 model" in out and "1 results" not in out


def test_dfscan_alone_prints_its_help_with_a_final_newline(tmp_path):
    code, screen = in_terminal([], tmp_path, env_for(tmp_path), timeout=60)
    assert code == 0 and screen.startswith("Usage: dfscan") and screen.endswith("\n"), repr(screen[-80:])
    assert "scan" in screen and "Commands:" in screen


def test_evaluate_help_does_not_offer_the_ray_engine(capsys):
    assert main(["evaluate", "--help"]) == 0
    assert "ray" not in capsys.readouterr().out.lower()
    assert main(["scan", "--help"]) == 0
    assert "--engine ray" in " ".join(capsys.readouterr().out.split())  # scan has it
