"""Keras Tuner's distributed search: the chief serves its oracle over gRPC, each worker runs the trials it is given.

The service, its client and its end condition are Keras Tuner's own (`keras_tuner`'s distribute package);
this module runs them the way a command needs.
"""

from __future__ import annotations

import time
from concurrent import futures

import grpc
import keras_tuner
from keras_tuner.src import protos
from keras_tuner.src.distribute import oracle_chief

from kerasdl.errors import KerasdlError
from kerasdl.tuning.role import Role


class _Servicer(oracle_chief.OracleServicer):
    def EndTrial(self, request, context):
        response = super().EndTrial(request, context)
        # Keras Tuner's end_trial saves the oracle before it drops the trial from its ongoing ones, and a worker's
        # next request may never come: a chief stopped then would run the finished trial again when resumed.
        self.oracle.save()
        return response


def serve_oracle(search: keras_tuner.Tuner, role: Role, *, poll_seconds: float = 1.0) -> None:
    """Serve `search`'s oracle at `role.address` until every worker has been told that the search is over.

    What Keras Tuner's chief does in `search()`, except that it checks for the end every second (Keras Tuner:
    every 20) and stops its server, so the port is free again while the chief retrains the best trial.
    """
    search.save()  # the chief's own state file: a restarted chief reloads the search from it
    # One request at a time, as Keras Tuner serves; no port sharing (gRPC's default), so a second chief fails here.
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=1), options=[("grpc.so_reuseport", 0)])
    servicer = _Servicer(search.oracle)
    protos.get_service_grpc().add_OracleServicer_to_server(servicer, server)
    try:
        bound = server.add_insecure_port(role.address)
    except RuntimeError:  # grpcio raises where older versions returned 0
        bound = 0
    if not bound:
        raise KerasdlError(
            f"cannot serve the oracle at {role.address}: the port is in use or the address is not this machine's"
        )
    server.start()
    try:
        while not (servicer.stop_triggered and oracle_chief.exit_chief(search.oracle)):
            time.sleep(poll_seconds)
    finally:
        server.stop(grace=None)


class _TrialLog:
    """Mixin for a worker's tuner: keeps (and prints) the ids of the trials this process runs, which otherwise only
    the chief's oracle knows while they run."""

    announce = True

    def __init__(self, *args, **kwargs):
        self.trial_ids: list[str] = []
        super().__init__(*args, **kwargs)

    def on_trial_begin(self, trial: keras_tuner.engine.trial.Trial) -> None:
        self.trial_ids.append(trial.trial_id)
        if self.announce:
            print(f"{self.tuner_id}: running trial {trial.trial_id}", flush=True)
        super().on_trial_begin(trial)


def worker_tuner(tuner_class: type[keras_tuner.Tuner], *, announce: bool) -> type[keras_tuner.Tuner]:
    """`tuner_class` for a worker: it records the trials it runs (printing each one when `announce`)."""
    return type(f"{tuner_class.__name__}Worker", (_TrialLog, tuner_class), {"announce": announce})
