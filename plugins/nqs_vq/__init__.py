"""VQ-NQS (Sharir et al. 2022): vector-quantised transformer wave functions with compressed local energies."""

from ._quantizer import (
    code_usage as code_usage,
    codes as codes,
    lookup as lookup,
    quantize as quantize,
    replace_dead_codes as replace_dead_codes,
    squared_distances as squared_distances,
    straight_through_reference as straight_through_reference,
)
from ._ansatz import VQTransformer as VQTransformer
from ._distill import (
    calibrate_capacity as calibrate_capacity,
    distill as distill,
    log_amplitude_mismatch as log_amplitude_mismatch,
    revive_dead_codes as revive_dead_codes,
    timed as timed,
    vq_from_baseline as vq_from_baseline,
)
from ._cost import local_energy_flops as local_energy_flops, xla_flops as xla_flops
