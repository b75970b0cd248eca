"""Full fine-tuning: every weight trains."""


def full(model):
    for p in model.parameters():
        p.requires_grad_(True)
    return model
