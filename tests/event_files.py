"""Read TensorBoard event files back without TensorBoard (not installed here; tensorboardX writes but has no
reader). An event file is a sequence of TFRecords: an 8-byte little-endian length, the masked CRC-32C of those 8
bytes, the serialized `Event` protobuf and its masked CRC-32C. Both CRCs are checked, so a torn or foreign file
fails loudly instead of reading as empty."""

from __future__ import annotations

import struct
from pathlib import Path

from tensorboardX.crc32c import crc32c
from tensorboardX.proto import event_pb2, plugin_hparams_pb2


def _masked(data: bytes) -> int:
    crc = crc32c(data)
    return (((crc >> 15) | (crc << 17)) + 0xA282EAD8) & 0xFFFFFFFF


def events(path: Path) -> list[event_pb2.Event]:
    data, pos, out = path.read_bytes(), 0, []
    while pos < len(data):
        header = data[pos:pos + 8]
        (length,) = struct.unpack("<Q", header)
        (header_crc,) = struct.unpack("<I", data[pos + 8:pos + 12])
        body = data[pos + 12:pos + 12 + length]
        (body_crc,) = struct.unpack("<I", data[pos + 12 + length:pos + 16 + length])
        assert header_crc == _masked(header) and body_crc == _masked(body), f"bad record at byte {pos} of {path}"
        event = event_pb2.Event()
        event.ParseFromString(body)
        out.append(event)
        pos += 16 + length
    return out


def scalars(folder: Path) -> dict[str, list[tuple[int, float]]]:
    """Every scalar of every event file in `folder`: tag -> [(step, value)], as TensorBoard shows the run."""
    out: dict[str, list[tuple[int, float]]] = {}
    for path in sorted(folder.glob("events.out.tfevents.*")):
        for event in events(path):
            for value in event.summary.value:
                if value.HasField("simple_value"):
                    out.setdefault(value.tag, []).append((event.step, value.simple_value))
    return out


def hparams(folder: Path) -> dict[str, object]:
    """The hyperparameters (TensorBoard's HParams tab) recorded in `folder`'s event files."""
    out: dict[str, object] = {}
    for path in sorted(folder.glob("events.out.tfevents.*")):
        for event in events(path):
            for value in event.summary.value:
                if value.tag == "_hparams_/session_start_info":
                    data = plugin_hparams_pb2.HParamsPluginData()
                    data.ParseFromString(value.metadata.plugin_data.content)
                    for key, v in data.session_start_info.hparams.items():
                        out[key] = getattr(v, v.WhichOneof("kind"))
    return out
