"""VQ-NQS (seed 002): vector-quantised transformer wave functions with compressed local energies."""

from ._quantizer import (
    code_usage as code_usage,
    codes as codes,
    lookup as lookup,
    quantize as quantize,
    replace_dead_codes as replace_dead_codes,
    squared_distances as squared_distances,
    straight_through_reference as straight_through_reference,
)
from ._transformer import VQTransformer as VQTransformer
