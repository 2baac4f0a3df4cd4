"""Preconditioners (SR, SRt, MinSR) and optax optimizers."""

from ._optimizers import adam as adam, adamw as adamw, make_schedule as make_schedule, rmsprop as rmsprop, sgd as sgd
from ._sr import SR as SR, real_sample_matrix as real_sample_matrix, solve_sr as solve_sr
from ._srt import MinSR as MinSR, SRt as SRt, solve_srt as solve_srt
from ._kfac import KFAC as KFAC, compatible_kfac_jax as compatible_kfac_jax
from ._dgd import DGD as DGD, dgd_metric as dgd_metric, score_jacobian as score_jacobian
from ._optimal_step import OptimalStep as OptimalStep, fisher_products as fisher_products, optimal_coefficients as optimal_coefficients
