# tune_waste.gp - slot bytes a request occupies beyond what it asked for,
# per class scheme, for every size 16..2048 (tars_slot_size).
set title sprintf("Size-class waste: (slot - requested) / slot, per request size\nuniform 16..2048: classes=0 wastes %.1f%%, classes=1 %.1f%% of slot bytes; crypto sizes: %.1f%% vs %.1f%%", wu0, wu1, wc0, wc1)
set xlabel 'requested bytes (log scale)'
set ylabel 'wasted share of the slot (%)'
set logscale x 2
set xrange [16:2048]
set yrange [0:55]
set xtics (16, 32, 64, 128, 256, 512, 1024, 2048)
set key top right box opaque
plot data.'/waste.dat' using 1:4 with steps lw 1.5 lc rgb '#1f77b4' title 'classes=0 (powers of two)', \
	'' using 1:5 with steps lw 1.5 lc rgb '#d62728' title 'classes=1 (quarter steps, default)'
