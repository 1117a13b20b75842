# `use` finds NAME.geo beside this file or in the stdlib.
use adamw, adamww   # error[GEO0501]: did you mean `adamw`?

optimizer wrapped = adamw_step
