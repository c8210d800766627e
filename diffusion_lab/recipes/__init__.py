"""The practitioner's experiments on 28x28 digits, each one command that reports its own result.

``python scripts/recipe.py experiment=recipe_<name>`` trains what the recipe needs (under its
output folder), measures, and writes ``report.md`` + ``report.json`` + PNGs there;
``scripts/recipes_docs.py`` copies the reports into ``docs/recipes/``. One module per recipe,
each a function ``run(ctx, ...)`` over a :class:`~diffusion_lab.recipes.context.RecipeContext`.
"""
