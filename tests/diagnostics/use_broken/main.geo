# The errors of a used spec are reported in that spec, and the run fails.
use helper

optimizer main = helper_step
