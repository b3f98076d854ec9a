"""RLE geometry of the OID metric (alpseg/evaluation/oid/masks.py) against plain decoders."""
import numpy as np
import pycocotools.mask as mask_utils
import pytest

from alpseg.evaluation.oid.masks import (
    decode_challenge_masks,
    encode_challenge_mask,
    encode_rle,
    rle_extents_normalized,
    rle_has_extent,
    rle_totals,
)


def plain_total(s: bytes) -> int:
    """Sum of the runs of a pycocotools compressed RLE string, decoded one byte at a time as its
    ``rleFrString`` does (with Python integers); -1 for a byte outside the alphabet, a truncated last
    run, or a run of more than 7 groups."""
    runs, p = [], 0
    while p < len(s):
        x, k, more = 0, 0, True
        while more:
            if p >= len(s):
                return -1
            ch = s[p] - 48
            if not 0 <= ch < 64:
                return -1
            x |= (ch & 0x1F) << (5 * k)
            more = bool(ch & 0x20)
            p += 1
            k += 1
            if not more and ch & 0x10:
                x -= 1 << (5 * k)
        if k > 7:
            return -1
        if len(runs) > 2:
            x += runs[-2]
        runs.append(x)
    return sum(runs)


def _masks(rng, n):
    """Random masks of many shapes: blobs, noise, empty, full, single pixels, border strips."""
    out = []
    for _ in range(n):
        h, w = int(rng.integers(1, 40)), int(rng.integers(1, 40))
        kind = rng.integers(6)
        if kind == 0:
            m = np.zeros((h, w), np.uint8)
        elif kind == 1:
            m = np.ones((h, w), np.uint8)
        elif kind == 2:
            m = (rng.random((h, w)) < rng.random()).astype(np.uint8)
        elif kind == 3:
            m = np.zeros((h, w), np.uint8)
            m[rng.integers(h), rng.integers(w)] = 1
        elif kind == 4:  # touches the last row / column
            m = np.zeros((h, w), np.uint8)
            m[-1, :] = 1
            m[:, -1] = rng.random(h) < 0.5
        else:
            m = np.zeros((h, w), np.uint8)
            y0, x0 = rng.integers(h), rng.integers(w)
            m[y0:rng.integers(y0, h) + 1, x0:rng.integers(x0, w) + 1] = 1
        out.append(m)
    return out


def test_rle_totals_of_pycocotools_strings_are_the_pixel_counts():
    rng = np.random.default_rng(0)
    masks = _masks(rng, 300)
    big = np.zeros((1024, 768), np.uint8)  # runs of several groups, long differences
    big[100:900, 7:700] = 1
    big[::3, 300:301] = 0
    masks.append(big)
    strings = [encode_rle(m)["counts"] for m in masks]
    assert rle_totals(strings).tolist() == [m.size for m in masks]
    assert rle_totals([]).tolist() == [] and rle_totals([b""]).tolist() == [0]


def test_rle_totals_of_corrupt_strings_equal_a_plain_decoder():
    rng = np.random.default_rng(1)
    good = [encode_rle(m)["counts"] for m in _masks(rng, 50)]
    for _ in range(400):
        batch = []
        for _ in range(int(rng.integers(1, 6))):
            r = rng.random()
            if r < 0.25:  # alphabet bytes: many groups, signs, truncations
                s = bytes(rng.integers(48, 112, int(rng.integers(0, 30))).astype(np.uint8))
            elif r < 0.4:  # any bytes
                s = bytes(rng.integers(0, 256, int(rng.integers(0, 30))).astype(np.uint8))
            elif r < 0.55:  # runs of more than 7 groups
                s = bytes([80 + int(rng.integers(32))] * int(rng.integers(6, 10)) + [48 + int(rng.integers(32))])
            else:  # a real string with one byte changed
                s = bytearray(good[rng.integers(len(good))])
                s[rng.integers(len(s))] = int(rng.integers(40, 120))
                s = bytes(s)
            batch.append(s)
        assert rle_totals(batch).tolist() == [plain_total(s) for s in batch], batch
    # hand-checked: runs 3, 2, 1 -> "3", "2", "1"; run 4 stored as 4 - 2 = 2; run 5 as 5 - 1 = 4
    assert plain_total(b"32124") == 15 and rle_totals([b"32124", b"0"]).tolist() == [15, 0]


def test_rle_has_extent_is_pycocotools_box_validity():
    rng = np.random.default_rng(2)
    rles = [encode_rle(m) for m in _masks(rng, 300)]
    rles += [{"size": [5, 4], "counts": r["counts"].decode()} for r in rles[:20]]  # str counts
    rles += [{"size": [3, 3], "counts": b""}, {"size": [0, 0], "counts": b""}, {"size": [3, 3], "counts": b"9"},
             {"size": [3, 3], "counts": b"0;"}, {"size": [0, 4], "counts": b"00"}]
    with np.errstate(divide="ignore", invalid="ignore"):
        boxes = rle_extents_normalized(rles)
        want = (boxes[:, 0] < boxes[:, 2]) & (boxes[:, 1] < boxes[:, 3])
    assert rle_has_extent(rles).tolist() == want.tolist()
    assert want[:300].tolist() == [bool(mask_utils.area(r) > 0) for r in rles[:300]]


def test_decode_challenge_masks_reports_each_bad_string():
    ok = np.zeros((4, 6), np.uint8)
    ok[1:3, 2:5] = 1
    text = encode_challenge_mask(ok)
    rles, errors = decode_challenge_masks([text, "not base64 zlib", text, text], [6, 6, 5, 6], [4, 4, 4, 4])
    assert errors[0] is None and (mask_utils.decode(rles[0]) == ok).all()
    assert rles[1] is None and errors[1].startswith("not a base64(zlib(RLE))")
    assert rles[2] is None and errors[2] == "mask RLE covers 24 pixels but ImageWidth x ImageHeight is 5 x 4 = 20"
    assert errors[3] is None and rles[3]["size"] == [4, 6]
    assert decode_challenge_masks([], [], []) == ([], [])


@pytest.mark.parametrize("bad", [b"0\x00", b"0z", b"0P"])
def test_decode_challenge_masks_flags_corrupt_counts(bad):
    import base64
    import zlib

    text = base64.b64encode(zlib.compress(bad)).decode()
    rles, errors = decode_challenge_masks([text], [1], [1])
    assert rles == [None] and errors == ["corrupt RLE counts in challenge mask"]
