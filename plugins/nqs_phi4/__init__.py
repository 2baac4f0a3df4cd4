"""Lattice phi^4 in 1+1 D with neural control variates (Bedaque and Oh 2024)."""

from ._space import Phi4Field as Phi4Field
from ._system import Phi4Action as Phi4Action
from ._fit import FitResult as FitResult, cosh_model as cosh_model, fit_correlator as fit_correlator
from ._observables import (
    blocking_errors as blocking_errors,
    correlator as correlator,
    correlator_at as correlator_at,
    effective_mass as effective_mass,
    generate_configurations as generate_configurations,
    integrated_autocorrelation as integrated_autocorrelation,
    jackknife as jackknife,
    load_configurations as load_configurations,
    save_configurations as save_configurations,
)
from ._sampler import HMC as HMC, HMCState as HMCState, MetropolisField as MetropolisField, MetropolisFieldState as MetropolisFieldState, CheckerboardRule as CheckerboardRule
from ._cv import ControlVariate as ControlVariate, CVNetwork as CVNetwork, variance_ratio as variance_ratio
from ._train import (
    cv_loss as cv_loss,
    fit_output_layer as fit_output_layer,
    linear_start as linear_start,
    l2_norm as l2_norm,
    paper_schedule as paper_schedule,
    train_control_variate as train_control_variate,
)
from ._transfer import transfer_train as transfer_train
from ._driver import ControlVariateDriver as ControlVariateDriver, CVTrainState as CVTrainState
from ._analysis import (
    correlator_table as correlator_table,
    load_control_variates as load_control_variates,
    plot_correlators as plot_correlators,
    save_control_variates as save_control_variates,
)
