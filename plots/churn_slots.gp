# churn_slots.gp - churn workload (crypto sizes): latency vs live slots.
set title sprintf("Steady-state churn latency, by number of live slots\n(free a random slot + alloc + touch, crypto sizes 16..2048 B; median ns/op; run %s)", run)
set xlabel 'live slots (log scale)'
set ylabel 'time per replacement (ns, log scale)'
set logscale xy
set autoscale xfix
set offsets graph 0.04, graph 0.04, 0, 0
set format y '%g'
@ns_tics
set format x '%.0s%c'
plot for [c=2:churn_slots_n] data.'/churn_slots.dat' using 1:c \
	title columnhead(c) with linespoints lt (word(churn_slots_lt, c-1)+0)
