"""A consortium on one machine, for the demo, the tests and the benchmarks (not the product).

* :mod:`~mpc_gateway.devnet.localnet`: PKI, data, configs and processes of a
  loopback consortium (:mod:`~mpc_gateway.devnet.configs`: the files it writes);
* :mod:`~mpc_gateway.devnet.netns`: the same with every node in its own network
  namespace, and :mod:`~mpc_gateway.devnet.relay`, a TCP relay that adds latency;
* :mod:`~mpc_gateway.devnet.synth`: seeded synthetic loan books;
* :mod:`~mpc_gateway.devnet.reference`: plaintext references over pooled rows;
* :mod:`~mpc_gateway.devnet.demo` and :mod:`~mpc_gateway.devnet.risk_demo`: the
  demo's queries, each checked against the pooled plaintext answer.

Nothing in the gateway or a node imports this package: it needs every
institution's rows, which no real party ever holds.
"""
