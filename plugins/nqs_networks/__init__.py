"""Built-in networks: RBM, feed-forward MLP, Jastrow, Deep ViT, and the
symmetry projection that wraps any of them."""

from ._common import log_cosh as log_cosh
from ._mlp import MLP as MLP, Jastrow as Jastrow
from ._rbm import RBM as RBM
from ._symmetry import (
    C4V_CHARACTERS as C4V_CHARACTERS,
    Symmetrized as Symmetrized,
    load_inner_params as load_inner_params,
    point_group_maps as point_group_maps,
    symmetry_group as symmetry_group,
    translation_maps as translation_maps,
    with_inner_params as with_inner_params,
)
from ._vit import ViT as ViT, patch_displacements as patch_displacements, vit_parameter_count as vit_parameter_count
