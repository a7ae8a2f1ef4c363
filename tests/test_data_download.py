"""The downloader against a local HTTP server on 127.0.0.1: fail-over, checksums, resume, safe extraction, bounded
retries listed once, https mirrors, the mirrors-file hook and the archive cache (Google Drive in Colab)."""

import hashlib
import io
import json
import re
import shutil
import socket
import tarfile
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import numpy as np
import pytest
import scipy.io
from PIL import Image

from ranlib.__main__ import main
from ranlib.data import cli
from ranlib.data.download import Archive, DownloadError, download, extract


def make_tar(members: dict[str, bytes], links: dict[str, str] | None = None, mode: str = "w") -> bytes:
    """A tar archive in memory: regular files ``members``, and symbolic links ``links`` (name -> target)."""
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode=mode) as tar:
        for name, data in members.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
        for name, target in (links or {}).items():
            info = tarfile.TarInfo(name)
            info.type, info.linkname = tarfile.SYMTYPE, target
            tar.addfile(info)
    return buffer.getvalue()


class RangeHandler(BaseHTTPRequestHandler):
    """Serves ``server.files``; honours ``Range: bytes=N-`` unless ``server.ignore_range``; paths in ``server.cut``
    drop the connection halfway the first time."""

    def do_GET(self):
        self.server.requests.append((self.path, self.headers.get("Range")))
        data = self.server.files.get(self.path)
        if data is None:
            self.send_error(404)
            return
        match = None if self.server.ignore_range else re.fullmatch(r"bytes=(\d+)-", self.headers.get("Range") or "")
        start = int(match.group(1)) if match else 0
        if start >= len(data) and match:
            self.send_error(416)
            return
        self.send_response(206 if match else 200)
        self.send_header("Content-Length", str(len(data) - start))
        if match:
            self.send_header("Content-Range", f"bytes {start}-{len(data) - 1}/{len(data)}")
        self.end_headers()
        body = data[start:]
        if self.path in self.server.cut:
            self.server.cut.discard(self.path)
            body = body[:len(body) // 2]  # then the connection closes: the client is left short
        self.wfile.write(body)

    def log_message(self, *args):
        pass


@pytest.fixture
def server():
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), RangeHandler)
    httpd.files, httpd.cut, httpd.requests, httpd.ignore_range = {}, set(), [], False
    thread = threading.Thread(target=httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    httpd.url = f"http://127.0.0.1:{httpd.server_address[1]}"
    yield httpd
    httpd.shutdown()
    httpd.server_close()
    thread.join(timeout=5)


@pytest.fixture
def dead_url():
    """A URL on a 127.0.0.1 port where nothing listens."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    return f"http://127.0.0.1:{port}/data.tar"


PAYLOAD = make_tar({"VOCdevkit/VOC2012/ImageSets/Segmentation/train.txt": b"a\n" * 5000,
                    "VOCdevkit/VOC2012/readme.txt": b"hello"})
ARCHIVE = Archive("voc", "data.tar", hashlib.md5(PAYLOAD).hexdigest(), (), "VOCdevkit/VOC2012")


def test_fails_over_from_dead_and_missing_mirrors(server, dead_url, tmp_path):
    server.files["/data.tar"] = PAYLOAD
    mirrors = (dead_url, f"{server.url}/gone.tar", f"{server.url}/data.tar")
    folder = download(ARCHIVE, tmp_path, mirrors=mirrors, timeout=5, progress=False)
    assert folder == tmp_path / "VOCdevkit" / "VOC2012"
    assert (folder / "readme.txt").read_bytes() == b"hello"
    assert [path for path, _ in server.requests] == ["/gone.tar", "/data.tar"]  # a 404 is not retried
    # Done once: a second call neither downloads nor extracts.
    (folder / "readme.txt").unlink()
    assert download(ARCHIVE, tmp_path, mirrors=mirrors, timeout=5, progress=False) == folder
    assert len(server.requests) == 2 and not (folder / "readme.txt").exists()


def test_dataset_extracted_by_hand_is_kept(server, tmp_path):
    (tmp_path / "VOCdevkit" / "VOC2012").mkdir(parents=True)
    assert download(ARCHIVE, tmp_path, mirrors=(f"{server.url}/data.tar",), timeout=5, progress=False) == \
        tmp_path / "VOCdevkit" / "VOC2012"
    assert server.requests == []


def test_checksum_mismatch_is_rejected(server, tmp_path):
    server.files["/bad.tar"] = make_tar({"VOCdevkit/VOC2012/readme.txt": b"tampered"})
    server.files["/data.tar"] = PAYLOAD
    folder = download(ARCHIVE, tmp_path, mirrors=(f"{server.url}/bad.tar", f"{server.url}/data.tar"), timeout=5,
                      progress=False)
    assert (folder / "readme.txt").read_bytes() == b"hello"
    with pytest.raises(DownloadError) as info:
        download(ARCHIVE, tmp_path / "other", mirrors=(f"{server.url}/bad.tar",), timeout=5, progress=False)
    message = str(info.value)
    # Every mirror failed: the message says what to fetch, its checksum, and where to put it.
    assert "md5" in message and f"{server.url}/bad.tar" in message and ARCHIVE.md5 in message
    assert str(tmp_path / "other" / "data.tar") in message and "download voc" in message
    assert not (tmp_path / "other" / "VOCdevkit").exists() and not (tmp_path / "other" / "data.tar.part").exists()


def test_resumes_after_a_cut_connection(server, tmp_path):
    server.files["/data.tar"] = PAYLOAD
    server.cut.add("/data.tar")
    folder = download(ARCHIVE, tmp_path, mirrors=(f"{server.url}/data.tar",), timeout=5, progress=False)
    assert (folder / "readme.txt").read_bytes() == b"hello"
    (first, first_range), (second, second_range) = server.requests
    assert first_range is None and second_range == f"bytes={len(PAYLOAD) // 2}-"


def test_restarts_when_the_server_ignores_range(server, tmp_path):
    server.files["/data.tar"] = PAYLOAD
    server.cut.add("/data.tar")
    server.ignore_range = True  # answers 200 with the whole file, whatever the Range header says
    folder = download(ARCHIVE, tmp_path, mirrors=(f"{server.url}/data.tar",), timeout=5, progress=False)
    assert (folder / "readme.txt").read_bytes() == b"hello"
    assert [r for _, r in server.requests] == [None, f"bytes={len(PAYLOAD) // 2}-"]
    assert (tmp_path / "data.tar").read_bytes() == PAYLOAD  # not the first half twice


def test_archive_with_path_outside_root_is_refused(tmp_path):
    root = tmp_path / "root"
    root.mkdir()
    evil = tmp_path / "evil.tar"
    evil.write_bytes(make_tar({"fine.txt": b"ok", "../evil": b"gotcha"}))
    with pytest.raises(DownloadError, match=r"'\.\./evil'.*outside"):
        extract(evil, root)
    assert not (tmp_path / "evil").exists() and not (root / "fine.txt").exists()
    absolute = tmp_path / "absolute.tar"
    absolute.write_bytes(make_tar({"fine.txt": b"ok", str(tmp_path / "abs_evil"): b"gotcha"}))
    with pytest.raises(DownloadError, match=r"abs_evil'.*outside"):
        extract(absolute, root)
    assert not (tmp_path / "abs_evil").exists() and not (root / "fine.txt").exists()


def test_link_pointing_outside_is_refused_by_the_data_filter(tmp_path):
    root = tmp_path / "root"
    root.mkdir()
    linked = tmp_path / "link.tar"
    linked.write_bytes(make_tar({}, links={"VOCdevkit/escape": "../../secret"}))
    with pytest.raises(DownloadError, match=r"link\.tar holds an unsafe member .*delete .*link\.tar"):
        extract(linked, root)
    assert not (root / "VOCdevkit" / "escape").is_symlink()


def test_cli_downloads_sbd_and_converts_its_masks(server, dead_url, tmp_path, monkeypatch, capsys):
    labels = np.arange(12, dtype=np.uint8).reshape(3, 4) % 21
    mat = io.BytesIO()
    scipy.io.savemat(mat, {"GTcls": {"Segmentation": labels}})
    payload = make_tar({"benchmark_RELEASE/dataset/cls/2008_000002.mat": mat.getvalue(),
                        "benchmark_RELEASE/dataset/train.txt": b"2008_000002\n",
                        "benchmark_RELEASE/dataset/val.txt": b""}, mode="w:gz")
    server.files["/benchmark.tgz"] = payload
    sbd = Archive("sbd", "benchmark.tgz", hashlib.md5(payload).hexdigest(), (dead_url, f"{server.url}/benchmark.tgz"),
                  "benchmark_RELEASE/dataset")
    monkeypatch.setattr(cli, "SBD", sbd)
    assert main(["download", "sbd", "--root", str(tmp_path), "--quiet"]) == 0
    png = tmp_path / "benchmark_RELEASE" / "dataset" / "cls_png" / "2008_000002.png"
    with Image.open(png) as image:
        assert image.mode == "P" and np.array_equal(np.asarray(image), labels)
    assert f"SBD is ready in {tmp_path / 'benchmark_RELEASE' / 'dataset'}" in capsys.readouterr().out


def test_cli_says_what_to_fetch_by_hand_when_every_mirror_fails(dead_url, tmp_path, monkeypatch, capsys):
    voc = Archive("voc", "VOCtrainval_11-May-2012.tar", "6cd6e144f989b92b3379bac3b3de84fd", (dead_url,),
                  "VOCdevkit/VOC2012")
    monkeypatch.setattr(cli, "VOC", voc)
    assert main(["download", "voc", "--root", str(tmp_path), "--quiet"]) == 2  # a failed download is bad input
    printed = capsys.readouterr().err
    assert dead_url in printed and "6cd6e144f989b92b3379bac3b3de84fd" in printed
    assert str(tmp_path / "VOCtrainval_11-May-2012.tar") in printed and "download voc --root" in printed


@pytest.fixture
def silent_url():
    """A URL on 127.0.0.1 whose server accepts the connection and then never answers."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen(8)  # the kernel completes the handshake; nobody ever reads or writes
        yield f"http://127.0.0.1:{s.getsockname()[1]}/data.tar"


def test_each_failed_mirror_is_listed_once_with_its_attempts(dead_url, server, tmp_path):
    with pytest.raises(DownloadError) as info:
        download(ARCHIVE, tmp_path, mirrors=(dead_url, f"{server.url}/gone.tar"), timeout=5, progress=False)
    message = str(info.value)
    tried = message.split("Fetch it by hand")[0]
    assert tried.count(dead_url) == 1 and "(3 attempts)" in tried
    assert tried.count(f"{server.url}/gone.tar") == 1 and "404" in tried


def test_silence_is_bounded_in_total_with_a_countdown(silent_url, capsys, tmp_path):
    tic = time.monotonic()
    with pytest.raises(DownloadError) as info:
        download(ARCHIVE, tmp_path, mirrors=(silent_url, silent_url.replace("data.tar", "other.tar")),
                 timeout=0.4, patience=1.0, attempts=3)
    elapsed = time.monotonic() - tic
    # Without the bound: 2 mirrors x 3 attempts x 0.4 s = 2.4 s of silence; with it, about 1 s.
    assert elapsed < 2.0, f"gave up after {elapsed:.1f} s"
    printed = capsys.readouterr().out
    assert re.search(r"\d+ s of 1 s left for retries", printed), printed
    tried = str(info.value).split("Fetch it by hand")[0]
    assert tried.count(silent_url) == 1 and "timed out" in tried and "not tried" in tried


def test_builtin_mirrors_use_https_where_the_host_offers_it():
    from ranlib.data.download import HTTP_ONLY, SBD, VOC

    for archive in (VOC, SBD):
        assert archive.mirrors[0].startswith("https://"), "the first mirror tried should be https"
        for url in archive.mirrors:
            assert url.startswith("https://") or any(host in url for host in HTTP_ONLY), url


def test_mirrors_file_overrides_mirrors_and_md5(server, tmp_path, monkeypatch):
    server.files["/other.tar"] = PAYLOAD
    default = Archive("voc", "data.tar", "0" * 32, ("http://127.0.0.1:9/never.tar",), "VOCdevkit/VOC2012")
    hook = tmp_path / "mirrors.json"
    hook.write_text(json.dumps({"voc": {"mirrors": [f"{server.url}/other.tar"], "md5": ARCHIVE.md5}}))
    monkeypatch.setenv("RANLIB_MIRRORS_FILE", str(hook))
    folder = download(default, tmp_path / "root", timeout=5, progress=False)
    assert (folder / "readme.txt").read_bytes() == b"hello"
    assert [path for path, _ in server.requests] == ["/other.tar"]
    hook.write_text("{not json")
    with pytest.raises(DownloadError, match="RANLIB_MIRRORS_FILE"):
        download(default, tmp_path / "again", timeout=5, progress=False)


def test_cache_folder_keeps_the_archive_for_the_next_session(server, tmp_path):
    server.files["/data.tar"] = PAYLOAD
    drive, local = tmp_path / "drive", tmp_path / "local"
    mirrors = (f"{server.url}/data.tar",)
    folder = download(ARCHIVE, local, mirrors=mirrors, cache=drive, timeout=5, progress=False)
    assert (drive / "data.tar").read_bytes() == PAYLOAD and not (local / "data.tar").exists()
    assert (folder / "readme.txt").read_bytes() == b"hello" and folder.is_relative_to(local)
    shutil.rmtree(local)  # a new session: the local disk is empty, the cache is not
    assert download(ARCHIVE, local, mirrors=mirrors, cache=drive, timeout=5, progress=False) == folder
    assert (folder / "readme.txt").read_bytes() == b"hello" and len(server.requests) == 1
    (drive / "data.tar").write_bytes(PAYLOAD[:100])  # a cached copy cut short is fetched again
    shutil.rmtree(local)
    download(ARCHIVE, local, mirrors=mirrors, cache=drive, timeout=5, progress=False)
    assert (drive / "data.tar").read_bytes() == PAYLOAD and len(server.requests) == 2
