"""glamkit's shared formats and specs: document records, token shards, manifests, spec dataclasses, `uniform`.

Everything here is plain Python plus pyarrow and PyYAML, so every other package (Beam jobs, the JAX trainer,
notebooks) can import it without dragging in a runtime. Import the submodules you need; this file stays light.
"""

SPEC_ROOT = __import__("pathlib").Path(__file__).resolve().parent
