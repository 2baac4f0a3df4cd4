"""The regularisations of the natural-gradient solvers for TDVP: the soft
eigenvalue cutoff `rcond` and the signal-to-noise cutoff `snr_cutoff`
(Schmitt and Heyl 2020) of SR, SRt and MinSR, against a numpy reference
written here (eigendecomposition of S, per-sample contributions)."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from nqs_optim import SR, MinSR, SRt


def _problem(n, p, seed, complex_=True):
    """Centred, scaled rows `Y = O_c / sqrt(n)` and `eps = e_c / sqrt(n)`."""
    rng = np.random.default_rng(seed)
    o = rng.normal(size=(n, p)) * np.linspace(0.2, 2.0, p)  # a spread of eigenvalues
    e = rng.normal(size=n) + o[:, :3].sum(axis=1)  # a force with signal in it
    if complex_:
        o = o + 1j * rng.normal(size=(n, p)) * np.linspace(2.0, 0.2, p)
        e = e + 1j * rng.normal(size=n)
    o, e = o - o.mean(axis=0), e - e.mean()
    return o / np.sqrt(n), e / np.sqrt(n)


def reference(y, eps, diag_shift=0.0, rcond=0.0, snr_cutoff=0.0, minsr=None):
    """delta = sum_k g_k / (lambda_k + shift) v_k (v_k . F) in numpy, with
    `g_k = 1/(1 + (rcond lambda_max/lambda_k)^6) / (1 + (snr_cutoff/SNR_k)^6)`,
    `SNR_k = |rho_k| sqrt(M) / std_s Q_{s,k}`, `Q_{s,k} = M Re[(Y v_k)_s eps_s]`
    (for a degenerate eigenvalue: sums of rho_k^2 and var_s Q_{s,k} over its eigenspace).
    `minsr = (rcond, acond)`: MinSR's hard cutoff on `lambda_k + shift` instead."""
    m = y.shape[0]
    s = np.real(y.conj().T @ y)
    force = np.real(y.T @ eps)
    lam, v = np.linalg.eigh(s)
    rho = v.T @ force
    q = m * np.real((y @ v) * eps[:, None])  # per-sample contributions
    np.testing.assert_allclose(q.mean(axis=0), rho, atol=1e-12)  # their mean is rho_k
    kept = lam > 1e-9 * lam.max()  # the null space of S (P > 2M): nothing to solve there
    g = np.ones_like(lam)
    if rcond > 0:
        g = g / (1 + (rcond * lam.max() / np.where(kept, lam, 1.0)) ** 6)
    if minsr is not None:
        w = lam + diag_shift
        kept = kept & (w > max(minsr[0] * w.max(), minsr[1]))
    if snr_cutoff > 0:
        # a degenerate eigenvalue (within 1e-8 lambda_max): the SNR of its eigenspace
        rho2, var = np.where(kept, rho**2, 0.0), np.where(kept, q.var(axis=0), 0.0)
        first = 0
        for k in range(1, len(lam) + 1):
            if k == len(lam) or lam[k] - lam[k - 1] > 1e-8 * lam.max():
                rho2[first:k], var[first:k] = rho2[first:k].sum(), var[first:k].sum()
                first = k
        with np.errstate(divide="ignore", invalid="ignore"):  # 0 or 0/0 in the null space (dropped)
            snr = np.sqrt(rho2 * m / var)
            g = g / (1 + (snr_cutoff / snr) ** 6)
    g = np.where(kept, g, 0.0)
    return v @ (g / (np.where(kept, lam, 1.0) + diag_shift) * rho), g.sum()


def assert_close(a, b, tol=1e-10):
    a, b = np.asarray(a), np.asarray(b)
    assert np.linalg.norm(a - b) <= tol * np.linalg.norm(b), np.linalg.norm(a - b) / np.linalg.norm(b)


CASES = [(0.0, 0.0, 2.0), (1e-3, 1e-2, 1.5)]  # (diag_shift, rcond, snr_cutoff)


@pytest.mark.parametrize("complex_", [True, False], ids=["complex", "real"])
@pytest.mark.parametrize("n, p", [(12, 60), (60, 12)], ids=["P>2n", "P<2n"])
def test_sr_srt_and_the_reference_agree(n, p, complex_):
    y, eps = _problem(n, p, seed=n + p, complex_=complex_)
    for shift, rcond, snr in CASES:
        ref, ref_rank = reference(y, eps, shift, rcond, snr)
        for solver in (SR(diag_shift=shift, rcond=rcond, snr_cutoff=snr), SRt(diag_shift=shift, rcond=rcond, snr_cutoff=snr)):
            delta, info = jax.jit(solver.solve)(jnp.asarray(y), jnp.asarray(eps))
            assert_close(delta, ref)
            np.testing.assert_allclose(info["effective_rank"], ref_rank, rtol=1e-10, err_msg=type(solver).__name__)
            assert 0 < float(info["effective_rank"]) < min(p, (2 if complex_ else 1) * n) - 1


def test_holomorphic_degenerate_pairs():
    """A holomorphic ansatz with complex parameters: `O` of the imaginary parts
    is `i O` of the real parts, so every eigenvalue of `S` is doubly degenerate
    and per-direction SNRs would depend on the eigensolver's arbitrary basis;
    the SNR of the pair makes SR and SRt agree."""
    a, eps = _problem(12, 40, seed=2)
    y = np.concatenate([a, 1j * a], axis=1)  # (Re theta, Im theta) of 40 complex parameters
    lam = np.linalg.eigvalsh(np.real(y.conj().T @ y))[::-1]
    np.testing.assert_allclose(lam[0:20:2], lam[1:20:2], rtol=1e-12)  # pairs
    ref, ref_rank = reference(y, eps, 1e-3, 1e-4, 2.0)
    for solver in (SR(diag_shift=1e-3, rcond=1e-4, snr_cutoff=2.0), SRt(diag_shift=1e-3, rcond=1e-4, snr_cutoff=2.0)):
        delta, info = jax.jit(solver.solve)(jnp.asarray(y), jnp.asarray(eps))
        assert_close(delta, ref)
        np.testing.assert_allclose(info["effective_rank"], ref_rank, rtol=1e-10)
        assert 1 < ref_rank < 21


HOLOMORPHIC_CASES = [  # (diag_shift, rcond, snr_cutoff, diag_scale): Cholesky, relative shift, soft cutoff, SNR
    (1e-3, 0.0, 0.0, 0.0),
    (1e-4, 0.0, 0.0, 0.2),
    (0.0, 1e-3, 0.0, 0.0),
    (1e-4, 1e-2, 2.0, 0.0),
]


def _scaled_reference(y, eps, shift, scale):
    """`(S + shift + scale diag S)^{-1} F` of the real form, in numpy."""
    s = np.real(y.conj().T @ y)
    return np.linalg.solve(s + np.diag(shift + scale * np.diag(s)), np.real(y.T @ eps))


@pytest.mark.parametrize("n, pc", [(12, 30), (60, 12)], ids=["P>2n", "P<2n"])
def test_the_complex_form_of_a_holomorphic_ansatz_equals_the_real_form(n, pc):
    """`solve_holomorphic(A, eps)` returns `z` with `[Re z; Im z]` the solution
    of the real form `Y = [A, i A]` (the numpy reference above): SR through
    its complex `P_c x P_c` Gram (Cholesky, eigendecomposition), SRt and MinSR
    through the protocol's default (the real form)."""
    a, eps = _problem(n, pc, seed=n * pc)
    y = np.concatenate([a, 1j * a], axis=1)
    for shift, rcond, snr, scale in HOLOMORPHIC_CASES:
        if scale:
            ref, ref_rank = _scaled_reference(y, eps, shift, scale), None
        else:
            ref, ref_rank = reference(y, eps, shift, rcond, snr)
        solvers = [SR(diag_shift=shift, rcond=rcond, snr_cutoff=snr, diag_scale=scale)]
        if not scale:
            solvers.append(SRt(diag_shift=shift, rcond=rcond, snr_cutoff=snr))
        if not (rcond or scale) and n > pc:  # MinSR: a hard cutoff below every eigenvalue
            solvers.append(MinSR(diag_shift=shift, rcond=1e-12, snr_cutoff=snr))
        for solver in solvers:
            z, info = jax.jit(solver.solve_holomorphic)(jnp.asarray(a), jnp.asarray(eps))
            assert z.shape == (pc,) and jnp.iscomplexobj(z)
            assert_close(np.concatenate([np.real(z), np.imag(z)]), ref)
            if ref_rank is not None and (rcond or snr):
                np.testing.assert_allclose(info["effective_rank"], ref_rank, rtol=1e-10, err_msg=type(solver).__name__)


def test_the_complex_gram_against_numpy():
    from nqs_optim import gram

    rng = np.random.default_rng(5)
    a = rng.normal(size=(2100, 90)) + 1j * rng.normal(size=(2100, 90))  # above GRAM_BLAS_MIN_WORK: "auto" is herk
    ref = a.conj().T @ a
    for method in ("auto", "blas", "xla"):
        g = np.asarray(gram(jnp.asarray(a), method))
        assert np.abs(g - ref).max() < 1e-12 * np.abs(ref).max(), method
        if method != "xla":
            assert np.array_equal(g, g.conj().T), method  # one triangle computed: exactly Hermitian


def test_the_soft_cutoff_damps_small_eigenvalues():
    y, eps = map(jnp.asarray, _problem(12, 60, seed=3))
    lam = np.linalg.eigvalsh(np.real(np.conj(y).T @ y))
    lam = lam[lam > 1e-9 * lam.max()]
    rc = float(lam[5] / lam.max())  # exactly on one eigenvalue: its factor is 1/2
    out = {rcond: jax.jit(SR(diag_shift=0.0, rcond=rcond).solve)(y, eps) for rcond in (1e-8, rc * (1 - 1e-9), rc)}
    ranks = {rcond: float(info["effective_rank"]) for rcond, (_, info) in out.items()}
    # 2n - 2 = 22 nonzero eigenvalues (real and imaginary parts of the rows are
    # centred), all kept at 1e-8; about the 5 below rc removed and the 6th halved
    assert len(lam) == 22 and abs(ranks[1e-8] - 22) < 1e-6
    factors = 1 / (1 + (rc * lam.max() / lam) ** 6)
    assert factors[5] == pytest.approx(0.5) and 15 < ranks[rc] < 18
    np.testing.assert_allclose(ranks[rc], factors.sum(), rtol=1e-10)
    # smooth in rcond: no jump where an eigenvalue crosses the cutoff
    d0, d1 = np.asarray(out[rc * (1 - 1e-9)][0]), np.asarray(out[rc][0])
    assert np.linalg.norm(d1 - d0) < 1e-6 * np.linalg.norm(d1)


def test_minsr_with_snr_against_the_reference():
    y, eps = _problem(12, 60, seed=7)
    for shift, rcond, acond, snr in [(1e-3, 1e-2, 0.0, 1.5), (0.0, 1e-6, 0.05, 3.0)]:
        ref, ref_rank = reference(y, eps, shift, snr_cutoff=snr, minsr=(rcond, acond))
        delta, info = jax.jit(MinSR(rcond=rcond, acond=acond, diag_shift=shift, snr_cutoff=snr).solve)(jnp.asarray(y), jnp.asarray(eps))
        assert_close(delta, ref)
        np.testing.assert_allclose(info["effective_rank"], ref_rank, rtol=1e-10)
        assert float(info["effective_rank"]) < int(info["n_kept"])


def test_snr_cutoff_removes_a_noise_dominated_direction():
    """Two orthogonal log-derivatives: the force along the first is signal
    (SNR about 14), along the second a weak signal under the noise (SNR 0.5)."""
    m, delta_true = 400, 0.05
    rng = np.random.default_rng(0)
    a = rng.normal(size=m)
    a = a - a.mean()
    b = rng.normal(size=m)
    b = b - b.mean()
    b = b - a * (a @ b) / (a @ a)  # exactly orthogonal: S is diagonal, v_k = e_k
    a, b = a / np.sqrt(a @ a / m), 0.5 * b / np.sqrt(b @ b / m)  # S = diag(1, 0.25)
    e = a + delta_true * b
    y, eps = np.stack([a, b], axis=1) / np.sqrt(m), e / np.sqrt(m)
    np.testing.assert_allclose(reference(y, eps)[0], [1.0, delta_true], rtol=1e-10)  # without the cutoff
    for solver in (SR(diag_shift=0.0, snr_cutoff=4.0), SRt(diag_shift=0.0, snr_cutoff=4.0)):
        d, info = jax.jit(solver.solve)(jnp.asarray(y), jnp.asarray(eps))
        ref, ref_rank = reference(y, eps, snr_cutoff=4.0)
        assert_close(d, ref)
        assert abs(d[1]) < 1e-4 * delta_true  # the noisy direction is gone
        assert 0.99 < d[0] < 1.0  # the signal is (almost) untouched
        assert abs(float(info["effective_rank"]) - 1.0) < 0.01


def test_cutoffs_off_reproduce_the_old_solvers_exactly():
    from nqs_optim import real_sample_matrix, solve_sr, solve_srt

    y, eps = map(jnp.asarray, _problem(20, 50, seed=11))

    def old_sr(y, eps):  # the SR pipeline before the cutoffs existed
        x, f = real_sample_matrix(y, eps)
        return solve_sr(x, f @ x, 1e-3)[0]

    def old_srt(y, eps):
        x, f = real_sample_matrix(y, eps)
        return solve_srt(x, f, 1e-4, split=True)[0]

    delta, info = jax.jit(SR(diag_shift=1e-3, rcond=0.0, snr_cutoff=0.0).solve)(y, eps)
    np.testing.assert_array_equal(delta, jax.jit(old_sr)(y, eps))
    assert set(info) == {"solve_ok"}
    delta, info = jax.jit(SRt(diag_shift=1e-4, rcond=0.0, snr_cutoff=0.0).solve)(y, eps)
    np.testing.assert_array_equal(delta, jax.jit(old_srt)(y, eps))
    assert set(info) == {"solver_fallback"}
    # MinSR without SNR: the hard pseudo-inverse as before, its count also as effective_rank
    x, f = map(np.asarray, real_sample_matrix(y, eps))
    w, u = np.linalg.eigh(x @ x.T)
    keep = w > 1e-10 * w.max()
    ref = x.T @ (u[:, keep] @ ((u[:, keep].T @ f) / w[keep]))
    delta, info = jax.jit(MinSR(rcond=1e-10).solve)(y, eps)
    assert_close(delta, ref)
    assert int(info["n_kept"]) == keep.sum() == float(info["effective_rank"])


def test_invalid_cutoffs_are_refused():
    for cls in (SR, SRt):
        with pytest.raises(ValueError, match="rcond must be a finite number >= 0"):
            cls(rcond=-1e-3)
        with pytest.raises(ValueError, match="snr_cutoff must be a finite number >= 0"):
            cls(snr_cutoff=float("nan"))
    with pytest.raises(ValueError, match="snr_cutoff must be"):
        MinSR(snr_cutoff=-1.0)
    with pytest.raises(ValueError, match='use solver = "cholesky"'):
        SR(rcond=1e-6, solver="cg")
    with pytest.raises(ValueError, match="diag_scale cannot be combined"):
        SR(snr_cutoff=2.0, diag_scale=0.1)


def test_memory_estimate_of_the_eigen_path():
    n, p = 256, 1000
    assert SR(rcond=1e-6).memory_estimate(n, p, 16) > SR().memory_estimate(n, p, 16)
    assert SRt(snr_cutoff=1.0).memory_estimate(n, p, 16) > SRt(rcond=1e-6).memory_estimate(n, p, 16) > SRt().memory_estimate(n, p, 16)


@pytest.fixture
def two_ranks(monkeypatch):
    """Two MPI ranks simulated by `jax.vmap` over a named axis: the
    collectives of `nqs_core.distributed` as the solvers import them become
    `psum` / `all_gather` / `all_to_all` over that axis (the solvers' own code
    runs unchanged; mpi4py is not needed)."""
    from jax import lax

    import nqs_optim._spectral as spectral
    import nqs_optim._sr as sr
    import nqs_optim._srt as srt

    def psum(x):
        return lax.psum(x, "ranks")

    def concat(x):
        g = lax.all_gather(x, "ranks")
        return g.reshape((-1,) + g.shape[2:])

    for module in (sr, srt, spectral):
        monkeypatch.setattr(module, "sum_over_ranks", psum, raising=False)
    monkeypatch.setattr(srt, "n_ranks", lambda: 2)
    monkeypatch.setattr(srt, "concat_over_ranks", concat)
    monkeypatch.setattr(srt, "alltoall", lambda x: lax.all_to_all(x, "ranks", 0, 0))
    monkeypatch.setattr(spectral, "n_ranks", lambda: 2)
    monkeypatch.setattr(spectral, "total_samples", lambda n: 2 * n)

    def run(solver, y, eps):
        """`solver.solve` with rank r holding rows r*n/2 ... (r+1)*n/2."""
        ys, es = y.reshape((2, -1) + y.shape[1:]), eps.reshape(2, -1)
        return jax.jit(jax.vmap(solver.solve, axis_name="ranks"))(jnp.asarray(ys), jnp.asarray(es))

    return run


def test_two_simulated_ranks_equal_one_process(two_ranks):
    """The statistics of the SNR are over the samples of both ranks (SR: sums
    over ranks; SRt / MinSR: the alltoall layout of the sample-space matrix,
    here with parameter blocks padded: 61 = 2 x 31 - 1)."""
    y, eps = _problem(12, 61, seed=5)
    ref, ref_rank = reference(y, eps, 1e-3, 1e-3, 2.0)
    for solver in (SR(diag_shift=1e-3, rcond=1e-3, snr_cutoff=2.0), SRt(diag_shift=1e-3, rcond=1e-3, snr_cutoff=2.0)):
        delta, info = two_ranks(solver, y, eps)
        for r in range(2):  # the same on both ranks
            assert_close(delta[r], ref)
            np.testing.assert_allclose(info["effective_rank"][r], ref_rank, rtol=1e-10)
    ref, ref_rank = reference(y, eps, 0.0, snr_cutoff=3.0, minsr=(1e-6, 0.0))
    delta, info = two_ranks(MinSR(rcond=1e-6, snr_cutoff=3.0), y, eps)
    assert_close(delta[1], ref)
    np.testing.assert_allclose(info["effective_rank"][1], ref_rank, rtol=1e-10)
