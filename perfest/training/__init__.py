"""Training: forward, backward and optimizer on one device or thousands.

config     TrainConfig (the validated input) and its resolution into a StepLayout
step       the step's parts (embedding, layer, head + loss) and phases, as data; a decoder's
           or an encoder's (masked-LM pre-training)
backward   backward ops derived from forward ops
compiled   parts compiled into plans (perfest.plan) and timed at a micro-batch
optimizer  optimizer states and the update, norm and zeroing kernels
memory     memory per device, term by term
parallel   data, pipeline and ZeRO communication with their overlap; the schedule
evaluate   one layout's step as numbers (the search's inner loop)
estimate   `estimate_training` → TrainingEstimate (results)
search     the best layouts for a cluster
"""
