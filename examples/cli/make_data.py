"""Writes the example data files of the command-line quick start (``docs/cli.md``).

* ``decay.csv``: counts = 2.5·exp(−0.4·t) + 0.3 plus Gaussian noise of the standard deviation in
  column ``err``, 60 rows: for ``marquardt fit``.
* ``engine.csv``: torque = 20·sin(speed/2)·exp(−load²/8) + 100 plus noise of standard deviation 0.2,
  300 rows, with a text column ``run`` that the command ignores: for ``marquardt train``.

Run ``python examples/cli/make_data.py`` from the repository root; the files are deterministic.
"""

from pathlib import Path

import numpy as np

HERE = Path(__file__).parent


def main() -> None:
    rng = np.random.default_rng(2024)
    t = np.linspace(0.0, 10.0, 60)
    err = np.round(0.03 + 0.04 * rng.uniform(size=t.size), 4)
    counts = 2.5 * np.exp(-0.4 * t) + 0.3 + err * rng.normal(size=t.size)
    with open(HERE / "decay.csv", "w") as f:
        f.write("t,counts,err\n")
        for row in zip(t, counts, err):
            f.write("{:.4f},{:.5f},{:.4f}\n".format(*row))

    speed, load = rng.uniform(0.0, 10.0, 300), rng.uniform(-3.0, 3.0, 300)
    torque = 20.0 * np.sin(speed / 2.0) * np.exp(-(load**2) / 8.0) + 100.0 + 0.2 * rng.normal(size=300)
    with open(HERE / "engine.csv", "w") as f:
        f.write("run,speed,load,torque\n")
        for i, row in enumerate(zip(speed, load, torque)):
            f.write("r{:03d},{:.4f},{:.4f},{:.4f}\n".format(i, *row))


if __name__ == "__main__":
    main()
