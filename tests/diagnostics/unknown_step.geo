# Composition names steps; an unknown step, or an operator, is reported.
use adamw

optimizer typo = adamw_stepp   # error[GEO0101]: did you mean `adamw_step`?
optimizer operator = lerp   # error[GEO0101]: is an operator, not a step
optimizer stdlib_typo = muonn   # error[GEO0101]: did you mean `muon`? it is defined in the stdlib: add `use muon`
optimizer stdlib_unused = lion   # error[GEO0101]: `lion` is defined in the stdlib: add `use lion`
