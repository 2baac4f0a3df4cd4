"""Built-in networks: RBM, feed-forward MLP, Jastrow, Deep ViT, and the
symmetry projection that wraps any of them."""

from nqs_core import lazy_exports as _lazy_exports

# Public names, imported on first use (see nqs_core._lazy): importing the
# package, as the plugin registration does, imports none of its models.
__getattr__, __dir__, __all__ = _lazy_exports(
    __name__,
    {
        "._common": ["log_cosh"],
        "._mlp": ["MLP", "Jastrow"],
        "._rbm": ["RBM"],
        "._symmetry": ["C4V_CHARACTERS", "Symmetrized", "load_inner_params", "point_group_maps", "symmetry_group", "translation_maps", "with_inner_params"],
        "._vit": ["ViT", "patch_displacements", "vit_parameter_count"],
    },
)
