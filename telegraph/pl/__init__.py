"""scanpy-style plots: ``tg.pl.kinetics``, ``tg.pl.distribution``,
``tg.pl.differential``, ``tg.pl.design``.

Every function takes ``adata`` first (``tg.pl.design`` the result of
:func:`telegraph.design.optimize`), draws into ``ax`` (a new figure when
None), saves with ``save=`` as scanpy does (``True``: ``<figdir>/<name>.<ext>``;
a string: appended to the default name, e.g. ``save="_S_vs_G2M.png"``, or a
path when it contains a directory) and returns the matplotlib Axes (unless
``show=True``, which shows the figure and returns None).
"""

from ._design import design
from ._differential import differential
from ._distribution import distribution
from ._kinetics import kinetics

__all__ = ["kinetics", "distribution", "differential", "design"]
