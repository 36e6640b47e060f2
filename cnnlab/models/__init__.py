"""Models: layer stacks with the lectures' names (`stack`), registered builders (`text_models`), pretrained blocks and
cnnlab's layers (`blocks`, `augment`), Keras 2.0.8 semantics (`keras2`), the row-lazy Adadelta
(`row_lazy`), parameter tables (`params`).

Reference: issue 14 (a layered package); ARCHITECTURE.md.
"""
