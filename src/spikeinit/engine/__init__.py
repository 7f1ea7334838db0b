"""The engine at the bottom of spikeinit: what makes spiking networks fast on a CPU, and safe.

- :mod:`~spikeinit.engine.kernels`: the compiled C++ kernels (the LIF time loop and the
  event-driven synapses), built on first use and verified;
- :mod:`~spikeinit.engine.gemm`, :mod:`~spikeinit.engine.event_linear`,
  :mod:`~spikeinit.engine.conv_layout`: the dense GEMM backend, the event-driven synapses and the
  convolutions' memory layout, each chosen by measurement on this machine;
- :mod:`~spikeinit.engine.tuning`: how those choices are measured, and kept per machine so that
  every process makes the same ones (``SPIKEINIT_TUNING``);
- :mod:`~spikeinit.engine.hazards`: kernels known to crash, never run;
  :mod:`~spikeinit.engine.vet`: candidates run first in a child process;
- :mod:`~spikeinit.engine.layout`: memory-layout helpers; :mod:`~spikeinit.engine.settings`:
  every ``SPIKEINIT_*`` variable.

It imports nothing of spikeinit but itself and the leaf modules ``io``, ``machine`` and
``_validation``; :mod:`spikeinit.neurons` and :mod:`spikeinit.models` build on it.
"""
