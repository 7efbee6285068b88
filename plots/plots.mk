# plots/: gnuplot figures (PNG and SVG) from a run's ratios.csv.
#
#   make plots                    figures for results/latest into plots/out/
#   make plots RESULTS=results/X  figures for another run
#
# plots/prepare.py extracts one small .dat per figure from the run's
# ratios.csv (medians over processes, ratios with intervals); each figure
# is a plots/<name>.gp script loaded after plots/common.gp.

RESULTS ?= results/latest
PLOTS_OUT := plots/out
PLOTS_DATA := $(PLOTS_OUT)/data

.PHONY: plots deps-plots

deps-plots:
	$(Q)$(NEED_DEB) gnuplot-nox python3

plots: deps-plots
	$(Q)test -f $(RESULTS)/ratios.csv || { echo "plots: no $(RESULTS)/ratios.csv (run make report)" >&2; exit 1; }
	$(Q)mkdir -p $(PLOTS_DATA) && rm -f $(PLOTS_OUT)/*.png $(PLOTS_OUT)/*.svg
	$(Q)python3 plots/prepare.py $(RESULTS) $(PLOTS_DATA)
	$(Q)set -e; for f in $$(cat $(PLOTS_DATA)/figures.txt); do \
	  for t in png svg; do \
	    $(if $(filter 1,$(V)),echo "  GNUPLOT $(PLOTS_OUT)/$$f.$$t";) \
	    gnuplot -e "fmt='$$t'; out='$(PLOTS_OUT)/$$f.$$t'; data='$(PLOTS_DATA)'" \
	      plots/common.gp plots/$$f.gp; \
	  done; \
	  echo "  PLOT    $(PLOTS_OUT)/$$f.png $(PLOTS_OUT)/$$f.svg"; \
	done
