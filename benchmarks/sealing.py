"""What sealing results to the analyst and witnessing every release cost per query.

Three parts, each measured on the benchmark query in a warm consortium:

* ``release``: the witnessed release round as the gateway reports it
  (``Timing.release_ms``): every node checks the checkpoint logging the release
  extends the last one it cosigned, cosigns it, records that in its witness log
  and hands over its sealed shares;
* ``seal``: one node sealing its result shares to the analyst's key (HPKE), timed
  in this process on a payload of the size the nodes sealed (nodes seal in parallel);
* ``open``: the client checking the gateway's signature, every node's cosignature
  and certificate, the release entry and digests, then decrypting, recombining and
  decoding (:func:`mpc_gateway.orders.release.open_relayed`). Of that, ``unseal``
  (reading the relayed message, the checks and the decryption:
  :func:`~mpc_gateway.orders.release.unsealed`) is what sealing and witnessing add;
  recombining the shares and decoding them is work the gateway did before results
  were sealed, moved to the client, not added.

``added`` is release + seal + unseal.
"""

from __future__ import annotations

import os
import statistics
import time
from typing import Any

from benchmarks.consortium import client_for
from benchmarks.stats import summary
from benchmarks.workload import BENCH_QUERY
from mpc_gateway.devnet.localnet import ConsortiumFiles
from mpc_gateway.orders.release import unsealed
from mpc_gateway.pki.receiver import seal, sealing_info
from mpc_gateway.rpc.convert import result_from_proto

__all__ = ["sealing_cost"]


def sealing_cost(files: ConsortiumFiles, repeats: int) -> dict[str, Any]:
    full, release, opening, unsealing, sizes = [], [], [], [], []
    with client_for(files) as client:
        message = client.request(
            "aggregate",
            BENCH_QUERY.dataset,
            where=BENCH_QUERY.where,
            purpose=BENCH_QUERY.purpose,
            aggregates=BENCH_QUERY.aggregates,
            group_by=BENCH_QUERY.group_by,
        )
        client._open(client._call(client._stub.Run, message), None)  # untimed
        assert client.receiver is not None
        for _ in range(repeats):
            started = time.perf_counter()
            reply = client._call(client._stub.Run, message)
            relayed = time.perf_counter()
            client._open(reply, None)
            done = time.perf_counter()
            unsealed(
                result_from_proto(reply),
                client.receiver,
                client._identity,
                client._ca,
                client._verified,
            )
            unsealing.append((time.perf_counter() - done) * 1000)
            full.append((done - started) * 1000)
            opening.append((done - relayed) * 1000)
            release.append(reply.timing.release_ms)
            sizes.append(statistics.median(len(s.ciphertext) for s in reply.sealed.shares))
        public = client.receiver.private_key.public_key()
    payload = os.urandom(int(statistics.median(sizes)) - 48)  # HPKE adds 32 + 16 bytes
    info = sealing_info("q" * 32, "p" * 64, "bank-a", 0)
    sealing = []
    for _ in range(repeats):
        started = time.perf_counter()
        seal(payload, public, info)
        sealing.append((time.perf_counter() - started) * 1000)
    parts = {"release": summary(release), "seal": summary(sealing), "unseal": summary(unsealing)}
    added = sum(part["median_ms"] for part in parts.values())
    return {
        **parts,
        "open": summary(opening),
        "full_path": summary(full),
        "sealed_bytes_per_node": int(statistics.median(sizes)),
        "added_median_ms": round(added, 3),
        "added_share_of_full_path": round(added / summary(full)["median_ms"], 3),
    }
