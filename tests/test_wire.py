import re

import numpy as np
import pytest

from topowatch.wire import Event, RunRequest, Snapshot, WireError


def test_snapshot_round_trip_keeps_every_value():
    neurons = np.arange(12, dtype=np.float32).reshape(4, 3) / 7
    message = Snapshot("run1", 30, 2, neurons, {"train_loss": 0.5, "sharpness": None, "lr": 0.003}).encode()
    assert isinstance(message["data"], bytes) and len(message["data"]) == 48
    decoded = Snapshot.decode({k.encode(): v if isinstance(v, bytes) else v.encode() for k, v in message.items()})
    assert decoded.run_id == "run1" and decoded.step == 30 and decoded.epoch == 2
    np.testing.assert_array_equal(decoded.neurons, neurons)
    assert decoded.metrics == {"train_loss": 0.5, "sharpness": None, "lr": 0.003}


def test_non_finite_metric_travels_as_null():
    message = Snapshot("r", 0, 0, np.zeros((1, 2), np.float32), {"train_loss": float("inf")}).encode()
    assert '"train_loss": null' in message["header"]


def _fields(**overrides):
    message = Snapshot("r", 1, 0, np.ones((2, 2), np.float32), {}).encode()
    message.update(overrides)
    return {k.encode(): v if isinstance(v, bytes) else v.encode() for k, v in message.items()}


@pytest.mark.parametrize(
    "overrides, error",
    [
        ({"data": b"\x00" * 12}, "12 bytes, shape [2, 2] needs 16"),
        ({"header": "{not json"}, "not JSON"),
        ({"header": '{"dtype": "<f8", "shape": [2, 2], "step": 1, "epoch": 0}'}, "dtype"),
        ({"header": '{"dtype": "<f4", "shape": [2], "step": 1, "epoch": 0}'}, "shape"),
        ({"header": '{"dtype": "<f4", "shape": [2, 2], "step": -1, "epoch": 0}'}, "step and epoch"),
        ({"header": '{"dtype": "<f4", "shape": [2, 2], "step": 1, "epoch": 0, "metrics": {"bogus": 1}}'}, "metrics"),
        ({"v": "99"}, "protocol version"),
    ],
)
def test_malformed_snapshot_is_rejected_with_a_reason(overrides, error):
    with pytest.raises(WireError, match=re.escape(error)):
        Snapshot.decode(_fields(**overrides))


def test_request_and_event_round_trip():
    request = RunRequest("abc", {"preset": "figure-eight", "lr": 0.1})
    assert RunRequest.decode({k.encode(): v.encode() for k, v in request.encode().items()}) == request
    event = Event("abc", "diverged", 17, "loss became nan", {"device": "cpu"})
    assert Event.decode({k.encode(): v.encode() for k, v in event.encode().items()}) == event
    with pytest.raises(WireError, match="unknown event kind"):
        Event.decode({k.encode(): v.encode() for k, v in Event("a", "exploded").encode().items()})
