"""Print the training fields' prime table: ``python scripts/field_primes.py [MAX_BITS]``.

For every 512 bits from 1,024 to MAX_BITS (default 12,288), the offset of the
smallest prime above ``2**bits`` (GMP's ``next_prime``, a BPSW test), in the form
of ``PRIMES`` in ``mpc_gateway/computations/train_layout.py``. Minutes at the
largest sizes.
"""

from __future__ import annotations

import sys

import gmpy2


def main(max_bits: int) -> None:
    for bits in range(1024, max_bits + 1, 512):
        prime = gmpy2.next_prime(gmpy2.mpz(1) << bits)
        print(f"    {bits}: {int(prime - (1 << bits))},", flush=True)


if __name__ == "__main__":
    main(int(sys.argv[1]) if len(sys.argv) > 1 else 12288)
